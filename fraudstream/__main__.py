"""`python -m fraudstream ...`: the `fraudstream` command, for an environment whose scripts are not on
the PATH."""

from fraudstream.cli import run

if __name__ == "__main__":
    run(prog_name="python -m fraudstream")
