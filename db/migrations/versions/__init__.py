"""One file per revision; ``python -m db revision -m "..."`` writes the next one."""
