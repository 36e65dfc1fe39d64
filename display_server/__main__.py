from display_server.cli import main

raise SystemExit(main())
