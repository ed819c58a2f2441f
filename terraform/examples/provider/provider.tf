terraform {
  required_providers {
    fipd = {
      source = "fipd/fipd"
    }
  }
}

# endpoint and token may also come from FIPD_ENDPOINT and FIPD_TOKEN.
provider "fipd" {
  endpoint = "http://127.0.0.1:8080"
  token    = var.fipd_token
}

variable "fipd_token" {
  type      = string
  sensitive = true
}
