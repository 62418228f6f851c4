import sys

from flowos.cli import main

sys.exit(main())
