import sys

from kbnn.cli import main

sys.exit(main())
