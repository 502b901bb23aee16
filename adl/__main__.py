from adl.cli import main

raise SystemExit(main())
