import sys

from rnnautomata.cli import main

sys.exit(main())
