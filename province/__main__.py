from province.cli import main

raise SystemExit(main())
