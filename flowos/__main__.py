import sys

from flowos.apps.cli import main

sys.exit(main())
