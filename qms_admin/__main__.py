from qms_admin.cli import main

raise SystemExit(main())
