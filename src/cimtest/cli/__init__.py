"""cli/: the command-line front; it only calls the public API of the layers below."""
