# A network is imported by its ID.
terraform import fipd_network.link1 0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8091
