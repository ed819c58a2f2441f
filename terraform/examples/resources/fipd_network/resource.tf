resource "fipd_network" "link1" {
  name        = "link-1"
  description = "rack 12, VLAN 300"
}
