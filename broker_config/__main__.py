from broker_config.tool import main

raise SystemExit(main())
