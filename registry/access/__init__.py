"""Dashboard users and their roles: accounts, passwords and log-in, and the `ctstudy users` command."""
