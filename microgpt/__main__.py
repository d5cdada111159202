from microgpt.cli import main

main()
