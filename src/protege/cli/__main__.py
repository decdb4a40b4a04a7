import sys

from protege.cli import main

sys.exit(main())
