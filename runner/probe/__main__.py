import sys

from .cell import main

sys.exit(main())
