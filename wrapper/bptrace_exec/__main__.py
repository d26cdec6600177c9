from bptrace_exec.cli import main

raise SystemExit(main())
