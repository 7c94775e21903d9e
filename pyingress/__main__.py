from pyingress.cli import main

raise SystemExit(main())
