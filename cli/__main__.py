"""``python -m cli``: the same as the ``runcap`` script."""

from cli.entry import main

main()
