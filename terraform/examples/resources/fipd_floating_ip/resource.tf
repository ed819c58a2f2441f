# From a pool, associated with an instance, with a standby to fail over to.
resource "fipd_floating_ip" "web" {
  pool_id              = fipd_pool.public.id
  project_id           = "web-team"
  instance_id          = fipd_instance.web1.id
  standby_instance_ids = [fipd_instance.web2.id]
  description          = "www.example.org"

  timeouts {
    create = "2m" # until ACTIVE on the instance's host
    update = "2m"
  }
}

# A specific address from the first pool of a network, not associated.
resource "fipd_floating_ip" "spare" {
  network_id = fipd_network.link1.id
  project_id = "web-team"
  address    = "2001:db8:100::1:80"

  # With network_id only, Terraform cannot see that the pool must exist first.
  depends_on = [fipd_pool.public]
}
