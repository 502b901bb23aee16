from adl.cli import main

if __name__ == "__main__":  # multiprocessing re-imports this module in the processes it spawns
    raise SystemExit(main())
