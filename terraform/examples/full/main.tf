# A whole fipd setup: one network with a pool, two hosts, an instance on
# each, and a floating IP on the first instance that fails over to the
# second. See ../../README.md ("Trying the full example") for how to run it
# against a local fipd with the locally built provider.

terraform {
  required_providers {
    fipd = {
      source = "fipd/fipd"
    }
  }
}

variable "endpoint" {
  description = "fipd's base URL."
  type        = string
  default     = "http://127.0.0.1:8080"
}

# The token comes from FIPD_TOKEN (for a fresh fipd: its data directory's
# admin-token file).
provider "fipd" {
  endpoint = var.endpoint
}

resource "fipd_network" "link1" {
  name        = "link-1"
  description = "the L2 segment of rack 12"
}

resource "fipd_pool" "public" {
  network_id = fipd_network.link1.id
  cidr       = "2001:db8:100::/64"
  ranges = [
    { first = "2001:db8:100::1:0", last = "2001:db8:100::1:ffff" },
  ]
  reserved = ["2001:db8:100::1:1"]
}

resource "fipd_host" "compute" {
  for_each = toset(["compute-1", "compute-2"])
  name     = each.key
}

resource "fipd_instance" "web" {
  for_each = {
    web-1 = "compute-1"
    web-2 = "compute-2"
  }
  name       = each.key
  host       = fipd_host.compute[each.value].name
  project_id = "web-team"
}

resource "fipd_floating_ip" "www" {
  pool_id              = fipd_pool.public.id
  project_id           = "web-team"
  instance_id          = fipd_instance.web["web-1"].id
  standby_instance_ids = [fipd_instance.web["web-2"].id]
  description          = "www.example.org"

  # Waits for ACTIVE on compute-1. Until an agent has connected for
  # compute-1, the provider does not wait and warns instead.
  timeouts {
    create = "2m"
    update = "2m"
  }
}

output "www_address" {
  value = fipd_floating_ip.www.address
}

output "www_status" {
  value = fipd_floating_ip.www.status
}

# Each host's agent token, for /etc/fip-agent/token (terraform output -json agent_tokens).
output "agent_tokens" {
  value     = { for name, h in fipd_host.compute : name => h.token }
  sensitive = true
}
