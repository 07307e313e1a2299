import sys

from dclm.cli import main

sys.exit(main())
