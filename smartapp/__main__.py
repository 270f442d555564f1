from smartapp.cli import main

raise SystemExit(main())
