import sys

from deploy.training.cli import main

sys.exit(main())
