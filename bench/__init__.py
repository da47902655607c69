"""ipcbench: scenarios, timing, statistics, results and reports."""
