
BprobabilitiesJ(z«?®+¿2áf5¤ˆ9Ol5d3ùİç57€ƒ6ü9I2: