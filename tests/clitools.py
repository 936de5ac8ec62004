"""What the command-line tests share: the one line a refused command prints."""


def error_line(result) -> str:
    """The one line a refused command prints (a CliRunner result), checked to be one line
    starting ``cimtest: error:`` with exit code 2."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("cimtest: error: "), result.stderr
    return lines[0]
