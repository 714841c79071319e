"""The `kdgat` command (main.py, the console entry point) and its subcommands, one file each; stage.py is
what the DVC stage scripts share. Nothing in the library imports this package."""
