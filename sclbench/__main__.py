import sys

from sclbench.cli import main

sys.exit(main())
