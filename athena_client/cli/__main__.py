"""`python -m athena_client.cli`: the `athena` command."""

from athena_client.cli.root import main

main()
