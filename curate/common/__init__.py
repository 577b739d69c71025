"""What every sidkit command shares and that is not the data contract: the one error type for bad
input, atomic file writes and locks, command-line output (errors, progress, formats), the user cache
folder, HTML pages and plot files."""
