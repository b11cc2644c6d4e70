from pmon3.daemon.app import main

main()
