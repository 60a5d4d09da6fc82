import sys

from vmws.cli import main

sys.exit(main())
