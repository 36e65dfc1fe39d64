from queue_core.cli import main

raise SystemExit(main())
