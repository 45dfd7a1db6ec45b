"""Synthetic markets (issue 5): the ESG constraint loss (``esg``), leak-free real windows (``data``), the
conditional WGAN over return windows (``cgan``) and the VAE (``vae``), fidelity metrics (``fidelity``), the
HTML report (``plots``, ``report_page``), the beta sweep (``beta_sweep``) and one run for the DAG and the CLI
(``pipeline``). Never reads Redis, never imports Airflow."""
