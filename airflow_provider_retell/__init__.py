"""Apache Airflow provider for Retell AI batch tests."""

__version__ = "0.1.0"
