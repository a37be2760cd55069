"""`python -m services.ctl`: the same CLI as the installed `ctl` command."""
from services.ctl.cli import main

main()
