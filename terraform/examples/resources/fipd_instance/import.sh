# An instance is imported by its ID.
terraform import fipd_instance.web1 0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8095
