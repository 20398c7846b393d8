import sys

from runeworker.cli import main

sys.exit(main())
