"""tester/: a fitted test on a bench: export its inputs, run them on chips, decide verdicts."""
