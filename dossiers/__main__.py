from dossiers.cli import main

raise SystemExit(main())
