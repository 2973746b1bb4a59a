"""Reading what runs logged: metric names, attention statistics, TensorBoard views, and
compare (runs, summary, plots, publish)."""
