from counter_agent.simulator.cli import main

raise SystemExit(main())
