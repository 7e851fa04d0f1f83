import sys

from centra_pipeline.cli.main import main

sys.exit(main())
