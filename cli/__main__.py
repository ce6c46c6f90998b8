"""``python -m cli``: the same as the ``runcap`` script."""

from cli.main import main

main()
