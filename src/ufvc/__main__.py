import sys

from ufvc.cli import main

sys.exit(main())
