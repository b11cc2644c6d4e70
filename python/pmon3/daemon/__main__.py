from pmon3.daemon.entry import main

main()
