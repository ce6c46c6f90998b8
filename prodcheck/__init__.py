"""The production topology without containers: what ``make prod-check`` starts and tests.

PostgreSQL from the machine, Temporal server and its schema tool built from the Go module
proxy at the version docker-compose.yml pins, the compose file's init and setup scripts and
dynamic config, and the worker and the api run from the package as their image runs them.
"""
