"""The command line: ``python -m engine <command>`` (cli, args), and the commands beside capture that
run the pipeline their own way: many clips on Ray (batch), a take from a camera (live)."""
