from audioretrieval.search.cli import main

main()
