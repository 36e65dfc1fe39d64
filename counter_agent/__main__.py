from counter_agent.cli import main

raise SystemExit(main())
