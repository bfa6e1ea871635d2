"""`python -m nginx_kpi` runs the CLI."""

from nginx_kpi.cli import main

main()
