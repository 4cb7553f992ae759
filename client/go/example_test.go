package corvid_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// The examples that talk to a server have no Output section: they compile
// and document, but need `corvid serve` running to do anything.

func ExampleDial() {
	// Plaintext suits a development server on this machine.
	c, err := corvid.Dial("localhost:8500", corvid.WithTimeout(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	models, err := c.ListModels(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range models {
		fmt.Println(m.GetName(), len(m.GetVersions()), "versions")
	}
}

func ExampleWithTLS() {
	// mTLS with the files `corvid certs --client alice` writes: the server
	// is checked against ca.pem, and the server checks alice's certificate.
	c, err := corvid.Dial("localhost:8500",
		corvid.WithTLS("certs/ca.pem", "certs/client-alice.pem", "certs/client-alice-key.pem"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

func ExampleWithTransportCredentials() {
	// mTLS: the server checks this client's certificate, the client checks
	// the server's against the system roots (or tls.Config.RootCAs).
	cert, err := tls.LoadX509KeyPair("client.crt", "client.key")
	if err != nil {
		log.Fatal(err)
	}
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
	})
	c, err := corvid.Dial("corvid.internal:8500",
		corvid.WithTransportCredentials(creds),
		corvid.WithBearerToken("eyJhbGciOi..."))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

func ExampleClient_Predict() {
	c, err := corvid.Dial("localhost:8500")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	pixels := make([]float32, 64) // one 8x8 image, flattened
	resp, err := c.Predict(context.Background(), "digits",
		map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(pixels, 1, 64)},
		corvid.Label("stable"), corvid.RoutingKey("user-42"))
	if status.Code(err) == codes.InvalidArgument {
		// The message names the expected and the received shape or dtype.
		log.Fatal(status.Convert(err).Message())
	}
	if err != nil {
		log.Fatal(err)
	}
	probs, err := corvid.AsFloat32(resp.GetOutputs()["probabilities"])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("version %d: %v\n", resp.GetVersion(), probs)
}

func ExampleClient_Stream() {
	c, err := corvid.Dial("localhost:8500")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	s, err := c.Stream(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// Many goroutines share one stream; each gets its own response.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			resp, err := s.Predict(ctx, &corvidv1.PredictRequest{
				Model:  "digits",
				Inputs: map[string]*corvidv1.Tensor{"input": corvid.Float32Tensor(make([]float32, 64), 1, 64)},
			})
			if err != nil {
				log.Printf("request %d: %v", i, err) // this request only; the stream goes on
				return
			}
			log.Printf("request %d: %s served by version %d", i, resp.GetRequestId(), resp.GetVersion())
		})
	}
	wg.Wait()
}

func ExampleFloat32Tensor() {
	t := corvid.Float32Tensor([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	fmt.Println(corvid.DTypeName(t.GetDtype()), t.GetShape(), len(t.GetRaw()), "bytes")
	// Output: fp32 [2 3] 24 bytes
}

func ExampleAsFloat32() {
	// The typed form, as a JSON caller would send it.
	t := &corvidv1.Tensor{
		Dtype:      corvidv1.DataType_DATA_TYPE_FP32,
		Shape:      []int64{1, 3},
		Fp32Values: []float32{0.1, 0.7, 0.2},
	}
	probs, err := corvid.AsFloat32(t)
	fmt.Println(probs, err)

	t.Shape = []int64{1, 4}
	_, err = corvid.AsFloat32(t)
	fmt.Println(err)
	// Output:
	// [0.1 0.7 0.2] <nil>
	// corvid: tensor shape mismatch: shape [1 4] holds 4 elements, fp32_values has 3
}
