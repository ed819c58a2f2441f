# A project token is imported by its ID. Its secret is not: fipd keeps only its hash.
terraform import fipd_project_token.web 0190b8a2-6c1e-7d3f-8a4b-2c5d6e7f8094
